"""The policy documents (markdown with YAML front matter): a package only so that they ship inside the
distribution and an installed `agentops` finds them wherever it runs."""
