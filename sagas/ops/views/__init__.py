"""What operations show, shared by the CLI and the dashboard: timelines, diagrams, charts."""
