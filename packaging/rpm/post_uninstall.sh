# nightjar %postun ($1: 0 on removal, 1 on upgrade):
# %systemd_postun_with_restart. The nightjar user and /var/lib/nightjar stay
# (RPM never deletes users or data it did not install).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -ge 1 ]; then
    systemctl try-restart nightjar.service >/dev/null 2>&1 || :
fi
