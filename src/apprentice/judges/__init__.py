"""Machine judges: language models asked which of two answers is better, calibrated against people.

A judge is an annotator of kind `ai` in the store and answers through the studio's API like a person.
It asks in both orders (A then B, and B then A) and gives an answer only when the two agree; otherwise
it abstains, and an abstention is never a label. Its judgments are kept apart from people's in every
count and agreement figure, and its weight in reward training comes from its measured agreement with
the project's people (`calibration.py`).
"""
