"""Deployment helpers: the TOSCA templates of tosca/ as an Ansible inventory or an IM bundle (:mod:`.tosca`)."""
