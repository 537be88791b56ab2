"""Necks: modules between an encoder's features and a decode head."""
