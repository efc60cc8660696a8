"""The control plane: kopf handlers, the conversion controller, the rollout planner.

`kopf run -m modelfleet.operator` works because importing this package registers the handlers.
"""

from modelfleet.operator import handlers as handlers
