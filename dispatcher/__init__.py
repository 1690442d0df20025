"""dispatcher: a webhook fan-out service.

Services POST events; subscribers register callback URLs; workers deliver every event to
every matching subscription, signed per Standard Webhooks, with durable retries.
"""

__version__ = "0.1.0"
