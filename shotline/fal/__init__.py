"""fal.ai: its queue, storage and platform APIs, and the generator that pays for clips through them."""
