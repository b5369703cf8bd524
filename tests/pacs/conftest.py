"""The PACS tests run a probe inside a loopback-only network namespace, as the Ray tests do."""
