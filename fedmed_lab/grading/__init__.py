"""The exercise grader behind ``fedmed-lab grade``.

- :mod:`fedmed_lab.grading.submission`: read a submission, restore protected cells, keep the answers.
- :mod:`fedmed_lab.grading.runner`: run the assembled notebook in a fresh course kernel within limits.
- :mod:`fedmed_lab.grading.scoring`: score each question from recorded test results; feedback notebooks.
- :mod:`fedmed_lab.grading.gradebook`: the SQLite gradebook and its CSV export.
- :mod:`fedmed_lab.grading.batch`: grade many submissions in parallel, resuming where a batch stopped.
"""

from fedmed_lab.grading.batch import BatchReport, collect_submissions, format_summary, grade_batch
from fedmed_lab.grading.gradebook import Gradebook
from fedmed_lab.grading.runner import Limits
from fedmed_lab.grading.scoring import GRADER_VERSION, GradeJob, QuestionResult, SubmissionResult, grade_submission

__all__ = ["GRADER_VERSION", "BatchReport", "GradeJob", "Gradebook", "Limits", "QuestionResult",
           "SubmissionResult", "collect_submissions", "format_summary", "grade_batch", "grade_submission"]
