"""comfyx's settings: how one is declared and read (:mod:`.spec`), and the tree of all of them (:mod:`.tree`).

Nothing is imported here, so that a concern's module can declare its settings with :mod:`.spec`
while :mod:`.tree` imports every concern.
"""
