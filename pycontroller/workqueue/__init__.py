"""Work queues for controllers (≙ client-go util/workqueue).

``WorkQueue`` de-duplicates keys and never hands one key to two workers at once;
``DelayingQueue`` adds ``add_after``; ``RateLimitingQueue`` adds ``add_rate_limited``
with a ``RateLimiter``. ``parallelize`` runs a function over a range on worker threads.
"""

from __future__ import annotations

from pycontroller.workqueue._delaying_queue import DelayingQueue
from pycontroller.workqueue._parallelize import parallelize
from pycontroller.workqueue._queue import WorkQueue
from pycontroller.workqueue._rate_limiters import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    ItemFastSlowRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    WithMaxWaitRateLimiter,
    default_controller_rate_limiter,
    default_item_based_rate_limiter,
)
from pycontroller.workqueue._rate_limiting_queue import RateLimitingQueue

__all__ = [
    "BucketRateLimiter",
    "DelayingQueue",
    "ItemExponentialFailureRateLimiter",
    "ItemFastSlowRateLimiter",
    "MaxOfRateLimiter",
    "RateLimiter",
    "RateLimitingQueue",
    "WithMaxWaitRateLimiter",
    "WorkQueue",
    "default_controller_rate_limiter",
    "default_item_based_rate_limiter",
    "parallelize",
]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
