"""The course's exercises: how they are graded, written and generated.

- ``lesson00.py`` … ``lesson10.py``: the graders of each lesson, one builder per exercise (the
  learner calls them as ``sdlearn.check.NAME(your_function, pipe)``);
- ``common.py``: the registry of graders and the inputs they share;
- ``grading.py``: how an answer is compared with the reference and its mistakes explained;
- ``restore.py``: what a grading changed in the pipeline and its scheduler, put back;
- ``authoring.py``: the learner notebooks (blanks) and solutions made from the authored lessons.

>>> import sdlearn.check
>>> from sdlearn.exercises.common import EXERCISES
>>> sorted(EXERCISES)[:3], len(EXERCISES)
(['add_noise_by_hand', 'attention_by_hand', 'cfg_batch'], 39)
"""
