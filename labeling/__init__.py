"""Core domain of the inspection service: projects, items, answers, consensus, costs."""
