// The CallClient target: see CallClient.swift.
