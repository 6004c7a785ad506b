"""placeholder during calibration"""
def prefer_packed(N, d, K, r_sum, u, itemsize):
    return r_sum <= u * K
