#!/usr/bin/env bash
# The services vars plugin on the user's path: enabled in the configuration, lb_services from
# host_vars/localhost.lb_services.yml into allocate; then a bad file, whose error must name the
# file, the field and the value.
set -eux

export ANSIBLE_VARS_ENABLED=host_group_vars,baremetal.lb.services
ledger="${OUTPUT_DIR}/vars_services.sqlite3"
rm -f "${ledger}"

ansible-playbook -i inventory playbook.yml -e "ledger=${ledger}" "$@"

# Without the plugin, the file is not read and the group's ordinary vars stand alone.
cat > "${OUTPUT_DIR}/without_plugin.yml" <<'PLAY'
- name: Without the plugin
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Only the ordinary vars
      ansible.builtin.assert:
        that:
          - lb_services is not defined
          - lb_pools | length == 2
PLAY
ANSIBLE_VARS_ENABLED=host_group_vars ansible-playbook -i inventory "${OUTPUT_DIR}/without_plugin.yml"

bad="${OUTPUT_DIR}/bad_inventory"
rm -rf "${bad}"
cp -r inventory "${bad}"
printf 'lb_services:\n  - {namespace: shop, name: web}\n  - {namespace: shop, name: api, prots: [80]}\n' \
  > "${bad}/host_vars/localhost.lb_services.yml"
if ansible-playbook -i "${bad}" playbook.yml -e "ledger=${ledger}" > "${OUTPUT_DIR}/bad.out" 2>&1; then
  echo "a bad lb_services file was accepted" >&2
  exit 1
fi
cat "${OUTPUT_DIR}/bad.out"
grep -F "${bad}/host_vars/localhost.lb_services.yml: lb_services[1].prots: unknown key 'prots'" "${OUTPUT_DIR}/bad.out"
grep -F "(got [80])" "${OUTPUT_DIR}/bad.out"
