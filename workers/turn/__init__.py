"""One step of a chat's turn, in phases: take the chat (``run.take_chat``), build the prompt
(``prompt``, ``compaction``), call the model (``llm``, ``openai_wire``, ``llm_errors``),
persist the step and decide what next (``persist``); plus titles and stale-chat recovery.
``run.run_step`` is the body of ``chat.step``.

May import: ``workers.tools``, ``workers.subagents``, ``workers.integrations``,
``workers.runtime``, ``agentfarm.tasks``/``chat_stream``/``integrations``, ``models``.
"""
