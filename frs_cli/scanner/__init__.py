"""A scan: each segment analysed (decode, detect, follow, encode), tracks joined across
cuts and matched, appearances assembled, resumed, summarised, with per-camera settings."""
