"""meterhub.sim"""
