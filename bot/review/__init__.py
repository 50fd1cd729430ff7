"""Model review: compare base and head evaluations (compare) and render the PR report (report).

Both modules are pure: they take values and return values, so the handlers stay thin.
"""
