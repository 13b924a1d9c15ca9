"""Background work by name: the task catalog (what exists, on which queue, how often), the
Dramatiq broker and its middleware, the after-commit outbox, queue and host names, and the
farm's queue-depth metrics. Every process sends through here; none imports an actor module.

May import: ``models``, ``agentfarm.settings``/``logs``/``metrics``. Never a process package.
"""
