"""The bus and control plane for scripts (the import README.md shows):

    from rtoc.bus import Subscriber, ControlClient, instance_endpoints
    ep = instance_endpoints("default")
    with Subscriber(ep["data"], ["Generator.Sine"]) as sub:
        batch = sub.recv(timeout=1.0)      # DataBatch: name, seq, t, y, lost, gap

A public facade over rtoc.pipeline.bus and rtoc.pipeline.control; RTOC's own code imports
those directly. It sits in the top layer beside the app shell, since it reaches down into
the pipeline.
"""

from __future__ import annotations

from rtoc.paths import endpoints as instance_endpoints
from rtoc.pipeline.bus import AggBatch, DataBatch, GapCounter, Meta, Subscriber, ViewBatch
from rtoc.pipeline.control import ControlClient

__all__ = ["AggBatch", "ControlClient", "DataBatch", "GapCounter", "Meta", "Subscriber", "ViewBatch",
           "instance_endpoints"]
