#version 330
uniform mat4 u_view_proj;
in vec3 in_pos;
in vec3 in_normal;
out vec3 v_world;
out vec3 v_normal;
void main() {
    v_world = in_pos;
    v_normal = in_normal;
    gl_Position = u_view_proj * vec4(in_pos, 1.0);
}
