"""Model review: read the sandbox's documents (parse), resample them (stats), judge the gates (gates),
compare base and head (compare) and render the PR report (report).

These modules are pure: they take values and return values, so the handlers stay thin.
"""
