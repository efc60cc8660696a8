"""`python -m modelfleet.agent ...` is `modelfleet agent ...` (for images without the CLI)."""

from modelfleet.agent.commands import agent_command

agent_command()
