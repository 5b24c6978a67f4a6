"""Footage in: opening and probing files, decoding frames with exact time from pts,
cutting files into segments, timecodes and wall clocks, and test clips (synthetic.py)."""
