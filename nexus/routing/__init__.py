from nexus.routing.request import Route, RoutingRequest
from nexus.routing.router import Router

__all__ = ["Route", "Router", "RoutingRequest"]
