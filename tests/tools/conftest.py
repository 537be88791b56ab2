import pytest
import torch


@pytest.fixture
def one_thread():
    """One CPU thread: tiny models run faster, and their timings are less noisy, than with
    thread hand-offs on a machine other jobs share."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
