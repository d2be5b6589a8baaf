"""persona_axis: the Python (GPU) side of the Assistant Axis pipeline.

Modules: roles (role files and questions), prompts (chat templates), transcripts (JSONL records),
tiny_models (local random-init test models), generate, judge, capture, persona_space, movement, report.
"""
