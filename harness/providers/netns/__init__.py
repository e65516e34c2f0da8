"""The netns provider: real upstream control planes in network namespaces on one Linux host."""
