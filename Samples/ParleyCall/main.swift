// parley-call: being written.
print("parley-call is not built yet")
