"""The AI pilot: Claude plans each run and proposes the next one; code validates, clamps and records.

Only this package imports `anthropic`, and only inside functions (the import costs 1.3-2 s).
"""
