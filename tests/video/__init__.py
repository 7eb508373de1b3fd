"""Tests of pyxai.video (STEP)."""
