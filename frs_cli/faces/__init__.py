"""Faces in pictures: the model families (families.py) and their networks, detectors,
landmarks, encoders, model files and distance tables; a photo's face; face crops."""
