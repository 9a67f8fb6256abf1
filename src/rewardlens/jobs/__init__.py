"""Scoring jobs: resumable runs planned as named shards and run by one executor, here or on Ray.

`base` (the Job protocol, plans, the one summary), `executor` (plan, score the missing shards, finish),
`pools` / `ray_pool` (where shards are scored), and one module per kind of job: `sweep` (every token of the
vocabulary), `words` (every word of a lexicon), `implicit` (a policy and a reference side by side), `activations`
(hidden states of stimuli, for `similarity layers`).
"""
