"""meterhub.publish"""
