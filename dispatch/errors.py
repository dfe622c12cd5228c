"""The exception tree of ``dispatch``::

DispatchError           base of everything dispatch raises on purpose
├── ProblemError        the problem is malformed (sizes, windows, unknown ids)
└── NoSolution          the solver found no plan within its limit (hard mode only)
"""

from __future__ import annotations


class DispatchError(Exception):
    """Base class of the errors ``dispatch`` raises on purpose."""


class ProblemError(DispatchError, ValueError):
    """The problem is malformed."""


class NoSolution(DispatchError):
    """No plan was found within the time limit."""
