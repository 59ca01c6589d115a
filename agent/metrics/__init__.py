"""Prometheus metrics of the agent, off by default (`[metrics]` in agent.toml): what is
measured (`agent_metrics`), the loopback listener (`http_listener`), and the task that
runs it and the node-exporter textfile (`exporter`). Imported only when enabled.

Others use: `exporter.MetricsExporter`, `agent_metrics.AgentReadings`.
"""
