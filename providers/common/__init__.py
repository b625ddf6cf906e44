"""What both cloud providers do alike, written once: errors, names, spec hashes, the drift-check skeleton
and the orphan sweep's grace bookkeeping.

Only cloud-neutral code lives here; it imports no cloud SDK (import-linter keeps it so).
"""
