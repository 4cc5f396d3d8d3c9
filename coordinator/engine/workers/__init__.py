"""Workers: ``coord worker`` processes (on this machine or others) that take a run's tasks from a queue.

Off unless the workspace's ``coord.yaml`` says ``workers: true`` (and its state is on Postgres). Then
the coordinator (``coord run``) schedules, decides gates and renders boards, but hands each task to a
queue built on procrastinate (:mod:`.queue`) instead of running it in its own threads
(:mod:`.dispatch`); a worker claims it, runs it with the task pool's own code path and records the
result (:mod:`.worker`). :mod:`.registry` is the table of live workers and where results are kept.
"""
