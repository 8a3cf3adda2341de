// `h` for writing components without JSX: components keep their typed props;
// intrinsic elements take loose props (preact's own overloads infer
// VNode<{}> without JSX and reject most of them).
import { h as preactH, type ComponentChildren, type VNode } from 'preact';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyProps = any;
export function h<P>(type: (props: P) => ComponentChildren, props: (Omit<P, 'children'> & { key?: string | number }) | null, ...children: ComponentChildren[]): VNode<AnyProps>;
export function h(type: string, props?: AnyProps, ...children: ComponentChildren[]): VNode<AnyProps>;
export function h(type: AnyProps, props?: AnyProps, ...children: ComponentChildren[]): VNode<AnyProps> {
  return preactH(type, props, ...children);
}
