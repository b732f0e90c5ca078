"""meterhub.drivers"""
