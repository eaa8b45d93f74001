"""The client API frontends use: subscribe to data/events/meta and talk to control.

    from rtoc.bus import Subscriber, ControlClient, instance_endpoints
    ep = instance_endpoints("default")
    with Subscriber(ep["data"], ["Generator.Sine"]) as sub:
        batch = sub.recv(timeout=1.0)      # DataBatch: name, seq, t, y, lost, gap
"""

from __future__ import annotations

from rtoc.paths import endpoints as instance_endpoints
from rtoc.pipeline.bus import AggBatch, DataBatch, GapCounter, Meta, Subscriber, ViewBatch
from rtoc.pipeline.control import ControlClient

__all__ = ["AggBatch", "ControlClient", "DataBatch", "GapCounter", "Meta", "Subscriber", "ViewBatch",
           "instance_endpoints"]
