"""Discovery: what the unclassified columns of the cataloged systems hold, from a bounded
sample read through the store contract's ``Sampling`` ability.  ``detectors`` recognize kinds
of personal values; ``verdicts`` turn a column's sample into a verdict with its evidence
(the share of sampled values a detector accepted) and propose a category and a strategy;
``coverage`` walks every SQL system; ``patch`` writes the reviewable YAML patch.  Values are
never printed, logged or stored: only verdicts and counts leave this package."""
