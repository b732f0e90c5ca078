"""meterhub.alarms"""
