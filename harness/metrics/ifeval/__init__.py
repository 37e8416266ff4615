"""IFEval: verifiable instruction following, scored strictly and loosely.

``checks`` holds one check per instruction id; ``metric`` turns them into the
four numbers IFEval reports (prompt- and instruction-level, strict and loose).
"""
