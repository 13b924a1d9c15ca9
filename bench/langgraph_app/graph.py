"""The LangGraph side of ``bench/langgraph_compare.py``: a one-node graph whose node asks a
fake chat model from langchain_core that answers "ok" at once (no network, no sleep).

``FakeListChatModel`` streams natively on asyncio (``GenericFakeChatModel`` would hop to a
thread pool per chunk), so the node costs what a real async model client's would, less the
model. It runs under ``langgraph dev`` in ``.venv-langgraph``, never in the project's venv.
"""

from __future__ import annotations

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage
from langgraph.graph import END, START, MessagesState, StateGraph

model = FakeListChatModel(responses=["ok"])


async def reply(state: MessagesState) -> dict[str, list[BaseMessage]]:
    """Ask the model with the thread's messages; its answer is appended to them."""
    return {"messages": [await model.ainvoke(state["messages"])]}


graph = (
    StateGraph(MessagesState)
    .add_node("reply", reply)
    .add_edge(START, "reply")
    .add_edge("reply", END)
    .compile()
)
