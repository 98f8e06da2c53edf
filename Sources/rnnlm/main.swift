print("rnnlm")
