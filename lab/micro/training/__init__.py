"""Training the micro world's student and teacher (``make train-micro``; see docs/micro-world.md).

``data`` builds labelled clips, questions and student targets from the micro generator; ``train_vae``,
``train_student`` and ``train_teacher`` fit the three models; ``pipeline`` runs them in order and swaps the
new weights into ``benchmarks/micro/weights``; ``measure`` reports what the trained world can do.
"""
