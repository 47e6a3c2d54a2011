// The Recording target's sources (TrackRecorder) live beside this file.
