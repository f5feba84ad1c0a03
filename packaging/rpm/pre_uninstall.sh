# nightjar %preun ($1: 0 on removal, 1 on upgrade): %systemd_preun and
# %systemd_user_preun. Stop and disable the service only on removal.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now nightjar.service >/dev/null 2>&1 || :
    systemctl --no-reload --global disable nightjar.service >/dev/null 2>&1 || :
fi
