"""kgen's performance and resource model: platforms, static cost counts, symbolic analysis,
overflow bounds and the schedule chooser (issue #6)."""
