"""Pure planning: the routing problem, OR-Tools solving, an independent plan checker.

``solve(problem, *, time_limit, seed, initial)`` (``dispatch.solver``) takes a
:class:`~dispatch.problem.Problem` and returns a :class:`~dispatch.plan.Plan`;
``dispatch.check.violations`` re-checks any plan against its problem.
"""
