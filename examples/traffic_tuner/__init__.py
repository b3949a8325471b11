"""traffic-tuner: switch a ConfigMap value as a Service's request rate crosses a threshold."""
