// mmhrsam annotate: the page. It talks to the server only through the JSON API of
// docs/annotate.md. The canvas shows the preview the server sends (downscaled for large
// images); clicks are mapped back to original-image pixels before they are sent, and the
// masks (COCO RLE at the original resolution) are sampled down to the preview for display.
'use strict';

const $ = (id) => document.getElementById(id);
const COLORS = [[230, 25, 75], [60, 180, 75], [255, 170, 0], [145, 30, 180], [70, 240, 240],
                [240, 50, 230], [0, 128, 128], [170, 110, 40]];
const CURRENT_COLOR = [30, 110, 255];

const state = {
  health: null,
  image: null,         // {image_id, name, width, height, preview_width, preview_height}
  preview: null,       // HTMLImageElement
  points: [],          // [[x, y], ...] original pixels
  labels: [],          // 1 positive, 0 negative
  mask: null,          // Uint8Array preview_width * preview_height, current object
  objects: [],         // saved objects with .previewMask
};
let queue = Promise.resolve();  // requests run one after the other, in click order

// ------------------------------------------------------------------ server calls
async function api(method, path, body) {
  const init = { method };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    let detail = data.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => `${d.loc.join('.')}: ${d.msg}`).join('; ');
    throw new Error(`${response.status}: ${detail || response.statusText}`);
  }
  return data;
}

function enqueue(task) {
  queue = queue.then(task).catch((err) => { setBusy(null); showMessage(err.message, true); });
  return queue;
}

// ------------------------------------------------------------------ status display
function showMessage(text, isError = false) {
  $('message').textContent = text;
  $('message').className = isError ? 'error' : '';
}

let busyTimer = null;
function setBusy(text) {
  clearInterval(busyTimer);
  document.body.dataset.busy = text ? '1' : '0';
  $('busy').hidden = !text;
  if (!text) return;
  const start = Date.now();
  const tick = () => { $('busy-text').textContent = `${text} ${((Date.now() - start) / 1000).toFixed(0)} s`; };
  tick();
  busyTimer = setInterval(tick, 500);
}

function updateControls() {
  const n = state.points.length;
  $('click-count').textContent = `${n} click${n === 1 ? '' : 's'}`;
  $('undo').disabled = n === 0;
  $('reset').disabled = n === 0;
  $('save').disabled = n === 0;
}

// ------------------------------------------------------------------ RLE
// COCO compressed RLE string -> run lengths (pycocotools' rleFrString).
function rleCounts(s) {
  const counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, more = true;
    while (more) {
      const c = s.charCodeAt(p) - 48;
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p += 1; k += 1;
      if (!more && (c & 0x10)) x -= 2 ** (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

// Nearest-neighbour sample of a column-major RLE mask (h, w) onto the (pw, ph) preview.
function rleToPreview(rle, pw, ph) {
  const [h, w] = rle.size;
  const colMap = new Int32Array(w).fill(-1);
  const rowMap = new Int32Array(h).fill(-1);
  for (let px = 0; px < pw; px++) colMap[Math.min(w - 1, Math.floor((px + 0.5) * w / pw))] = px;
  for (let py = 0; py < ph; py++) rowMap[Math.min(h - 1, Math.floor((py + 0.5) * h / ph))] = py;
  const out = new Uint8Array(pw * ph);
  const counts = rleCounts(rle.counts);
  let start = 0;
  for (let i = 0; i < counts.length; i++) {
    const end = start + counts[i];
    if (i % 2 === 1) {  // odd runs are foreground
      for (let a = start; a < end;) {
        const x = Math.floor(a / h), colEnd = Math.min(end, (x + 1) * h), px = colMap[x];
        if (px >= 0) {
          for (let y = a - x * h; y < colEnd - x * h; y++) {
            if (rowMap[y] >= 0) out[rowMap[y] * pw + px] = 1;
          }
        }
        a = colEnd;
      }
    }
    start = end;
  }
  return out;
}

// ------------------------------------------------------------------ drawing
// A mask as a translucent layer with an opaque outline (pixels with a 4-neighbour outside).
function maskLayer(mask, color, alpha, pw, ph) {
  const layer = document.createElement('canvas');
  layer.width = pw; layer.height = ph;
  const ctx = layer.getContext('2d');
  const pixels = ctx.createImageData(pw, ph);
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    const x = i % pw, y = (i - x) / pw;
    const edge = x === 0 || y === 0 || x === pw - 1 || y === ph - 1 ||
      !mask[i - 1] || !mask[i + 1] || !mask[i - pw] || !mask[i + pw];
    pixels.data.set([color[0], color[1], color[2], edge ? 255 : alpha], 4 * i);
  }
  ctx.putImageData(pixels, 0, 0);
  return layer;
}

// Show the preview as large as the stage allows (clicks are mapped from the shown size).
function fitCanvas() {
  if (!state.image) return;
  const stage = $('stage'), canvas = $('canvas');
  const scale = Math.min((stage.clientWidth - 24) / canvas.width, (stage.clientHeight - 24) / canvas.height);
  canvas.style.width = `${Math.max(1, Math.floor(canvas.width * scale))}px`;
  canvas.style.height = `${Math.max(1, Math.floor(canvas.height * scale))}px`;
}

function draw() {
  const canvas = $('canvas'), ctx = canvas.getContext('2d');
  if (!state.image) return;
  const pw = state.image.preview_width, ph = state.image.preview_height;
  ctx.drawImage(state.preview, 0, 0, pw, ph);
  state.objects.forEach((o, i) => ctx.drawImage(maskLayer(o.previewMask, COLORS[i % COLORS.length], 90, pw, ph), 0, 0));
  if (state.mask) ctx.drawImage(maskLayer(state.mask, CURRENT_COLOR, 120, pw, ph), 0, 0);
  const sx = pw / state.image.width, sy = ph / state.image.height;
  const radius = Math.max(4, Math.round(Math.max(pw, ph) / 120));
  state.points.forEach(([x, y], i) => {
    ctx.beginPath();
    ctx.arc((x + 0.5) * sx, (y + 0.5) * sy, radius, 0, 2 * Math.PI);
    ctx.fillStyle = state.labels[i] ? '#22c55e' : '#ef4444';
    ctx.fill();
    ctx.lineWidth = Math.max(1, radius / 3);
    ctx.strokeStyle = '#fff';
    ctx.stroke();
  });
}

// ------------------------------------------------------------------ actions
async function loadHealth() {
  const health = await api('GET', '/api/health');
  state.health = health;
  $('model-info').textContent = `${health.model} · ${health.device}`;
  if (health.warning) { $('warning').textContent = health.warning; $('warning').hidden = false; }
  const select = $('target-size');
  select.innerHTML = '';
  for (const size of health.target_sizes) {
    const option = document.createElement('option');
    option.value = size; option.textContent = `${size} × ${size}`;
    option.selected = size === health.default_target_size;
    select.appendChild(option);
  }
}

async function loadImageList() {
  const { images } = await api('GET', '/api/images');
  const list = $('image-list');
  list.innerHTML = '';
  for (const image of images) {
    const item = document.createElement('li');
    if (image.error) {
      item.className = 'bad'; item.textContent = image.name; item.title = image.error;
    } else {
      item.textContent = `${image.name} (${image.width}×${image.height})`;
      item.dataset.imageId = image.image_id;
      if (state.image && state.image.image_id === image.image_id) item.className = 'active';
      item.onclick = () => enqueue(() => openImage(image.image_id));
    }
    list.appendChild(item);
  }
}

function loadPreview(imageId) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error('the preview could not be loaded'));
    img.src = `/api/images/${imageId}/preview`;
  });
}

async function openImage(imageId) {
  setBusy('Loading the image…');
  const image = await api('GET', `/api/images/${imageId}`);
  state.preview = await loadPreview(imageId);
  Object.assign(state, { image, points: [], labels: [], mask: null, objects: [] });
  const canvas = $('canvas');
  canvas.width = image.preview_width; canvas.height = image.preview_height;
  fitCanvas();
  $('image-info').textContent = `${image.name}: ${image.width} × ${image.height} px` +
    (image.preview_width < image.width ? ` (shown at ${image.preview_width} × ${image.preview_height})` : '');
  draw(); updateControls(); await loadImageList();
  await loadObjects();
  await embed();
}

async function embed() {
  if (!state.image) return;
  const size = Number($('target-size').value);
  setBusy(`Computing the ${size}² embedding…`);
  const result = await api('POST', `/api/images/${state.image.image_id}/embed`, { target_size: size });
  setBusy(null);
  showMessage(result.cached ? `Embedding ${size}² (cached). Click on the image.`
    : `Embedding ${size}² computed in ${result.seconds.toFixed(1)} s. Click on the image.`);
}

async function loadObjects() {
  const { objects } = await api('GET', `/api/images/${state.image.image_id}/objects`);
  const pw = state.image.preview_width, ph = state.image.preview_height;
  state.objects = objects.map((o) => Object.assign(o, { previewMask: rleToPreview(o.rle, pw, ph) }));
  const list = $('objects');
  list.innerHTML = '';
  objects.forEach((o, i) => {
    const item = document.createElement('li');
    const color = COLORS[i % COLORS.length];
    item.innerHTML = `<span class="swatch" style="background: rgb(${color})"></span>`;
    item.appendChild(document.createTextNode(`#${o.object_id} ${o.label || '(no label)'} · ${o.area} px`));
    item.title = o.mask_file;
    list.appendChild(item);
  });
  draw();
}

async function predict() {
  if (state.points.length === 0) { state.mask = null; $('score').textContent = '—'; draw(); return; }
  setBusy('Predicting…');
  const result = await api('POST', `/api/images/${state.image.image_id}/predict`, {
    points: state.points, labels: state.labels, target_size: Number($('target-size').value),
    reset: state.points.length === 1,
  });
  setBusy(null);
  state.mask = rleToPreview(result.rle, state.image.preview_width, state.image.preview_height);
  $('score').textContent = `score ${result.score.toFixed(3)}, ${result.area} px`;
  document.body.dataset.maskArea = result.area;
  draw();
}

async function saveObject() {
  setBusy('Saving…');
  const saved = await api('POST', `/api/images/${state.image.image_id}/objects`, {
    points: state.points, labels: state.labels, label: $('label').value,
    target_size: Number($('target-size').value),
  });
  setBusy(null);
  showMessage(`Saved object #${saved.object_id} as ${saved.mask_file}.`);
  Object.assign(state, { points: [], labels: [], mask: null });
  $('label').value = '';
  $('score').textContent = '—';
  updateControls();
  await loadObjects();
}

function onCanvasClick(event, label) {
  event.preventDefault();
  if (!state.image || document.body.dataset.busy === '1') return;
  const rect = $('canvas').getBoundingClientRect();
  const x = Math.floor((event.clientX - rect.left) / rect.width * state.image.width);
  const y = Math.floor((event.clientY - rect.top) / rect.height * state.image.height);
  state.points.push([Math.min(Math.max(x, 0), state.image.width - 1),
                     Math.min(Math.max(y, 0), state.image.height - 1)]);
  state.labels.push(label);
  updateControls(); draw();
  enqueue(predict);
}

function init() {
  const canvas = $('canvas');
  canvas.addEventListener('click', (e) => onCanvasClick(e, 1));
  canvas.addEventListener('contextmenu', (e) => onCanvasClick(e, 0));
  $('undo').onclick = () => { state.points.pop(); state.labels.pop(); updateControls(); enqueue(predict); };
  $('reset').onclick = () => { state.points = []; state.labels = []; updateControls(); enqueue(predict); };
  $('save').onclick = () => enqueue(saveObject);
  $('target-size').onchange = () => enqueue(async () => { await embed(); await predict(); });
  $('upload').onchange = () => {
    const file = $('upload').files[0];
    if (!file) return;
    enqueue(async () => {
      setBusy(`Uploading ${file.name}…`);
      const form = new FormData();
      form.append('file', file);
      const image = await api('POST', '/api/images', form);
      $('upload').value = '';
      await openImage(image.image_id);
    });
  };
  window.addEventListener('resize', fitCanvas);
  enqueue(async () => { await loadHealth(); await loadImageList(); });
}

window.annotator = state;  // for debugging from the console
init();
