"""Prediction on new radiographs with a trained run or an exported model.

models.py: which model(s) (final, export, fold ensemble) + preprocessing + threshold.
inputs.py: image files or a prediction table (no outcome column needed).
predict.py: probabilities, classes, optional Grad-CAM, CSV output.
"""
