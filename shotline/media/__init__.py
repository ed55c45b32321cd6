"""Media work on the ffmpeg binary moviepy ships: probing, finishing, effects, reels, loudness, checks."""
